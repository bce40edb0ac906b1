"""The package's version, in a module of its own: the service reports it without importing the
package's public face (which names every stage)."""

__version__ = "0.2.0"
