"""Beyond Binary: deep metric learning with continuous labels (no Streamlit in here)."""
__version__ = "0.1.0"
