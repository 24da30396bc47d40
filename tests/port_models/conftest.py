"""Model files here are test data read by the port tests, not modules to collect.

Some import what is not installed on purpose (`torchvision`), so pytest's
doctest collection must not import them.
"""

collect_ignore_glob = ["*.py"]
