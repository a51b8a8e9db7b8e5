"""Parameter sweeps: ``python -m engine.sweep SWEEP``.

``spec`` reads the sweep file, ``runner`` runs its trials on Ray Tune, ``trial`` is one
walk-forward backtest on the selection period, ``stats`` holds PSR, DSR and PBO, and
``outputs`` / ``plots`` / ``html`` write the sweep directory.
"""
