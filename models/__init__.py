"""The LSTM forecaster: windows of bars in, next-close forecasts out (Keras 3)."""

from models.runtime import pin_cpu_kernels

pin_cpu_kernels()  # before any module of the package imports TensorFlow
