"""breastlab: breast-imaging AI toolkit."""
__version__ = "0.1.0"
