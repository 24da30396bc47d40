"""A minimal dualtrain backend: what a third party writes to add a framework."""

from dualtrain_example_backend.backend import ExampleBackend

__all__ = ["ExampleBackend"]
