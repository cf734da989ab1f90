"""The recipes and the assistant file, installed with the package as ``voice_gru.configs`` (pyproject.toml): an
installed voice-gru finds ``configs/…`` without a clone."""
