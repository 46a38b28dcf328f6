"""Test helpers: real servers the suite starts for itself."""
