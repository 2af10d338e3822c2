"""resistance-outcomes: coded therapy-session data to mixed-model results by framework."""

__version__ = "0.1.0"
