"""The LSTM forecaster: windows of bars in, next-close forecasts out (Keras 3)."""
