"""The app's pages (run through ``st.navigation`` in app.py).

A deep link (say ``/learn_4_mahalanobis``) as the very first request after the server starts
reaches Streamlit before app.py has ever called ``st.navigation``, so Streamlit still treats
``pages/`` as a legacy multipage folder and runs the page alone, with its own sidebar. Every
page imports this package: leave that mode and rerun, so app.py's navigation serves the page.
"""
import streamlit as st
from streamlit.runtime.pages_manager import PagesManager

if PagesManager.uses_pages_directory:
    PagesManager.uses_pages_directory = False
    st.rerun()
