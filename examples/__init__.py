"""The example shop, ``make demo``'s script and the helpers they share (importable by the tests)."""
