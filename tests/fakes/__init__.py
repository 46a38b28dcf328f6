"""Fakes of outside services; each says so in its name."""
