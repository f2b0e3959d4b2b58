"""Routing: the page list, and one run of the app (mode, navigation, the shared sidebar, the
page). app.py calls run_app(); every page starts with selection()."""
from __future__ import annotations

import streamlit as st

from . import serving_mode, sidebar
from .sidebar import Selection

PAGES = [("pages/build.py", "Build & train", ":material/construction:"),
         ("pages/attention.py", "Attention", ":material/grid_on:"),
         ("pages/heads.py", "Head atlas", ":material/apps:"),
         ("pages/compare.py", "Compare & generate", ":material/compare_arrows:"),
         ("pages/rope.py", "RoPE geometry", ":material/rotate_right:"),
         ("pages/gqa.py", "GQA sharing", ":material/hub:"),
         ("pages/performance.py", "Latency & memory", ":material/speed:"),
         ("pages/experiments.py", "Experiments", ":material/science:")]


def run_app():
    st.set_page_config(page_title="gpt2viz", page_icon=":material/visibility:", layout="wide")
    serving_mode.apply_mode()
    page = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])
    st.session_state["selection"] = sidebar.draw()
    sidebar.show_link_notes()
    page.run()


def selection() -> Selection:
    """The sidebar's choices. A fresh server whose first request is a deep link runs the page
    file on its own (Streamlit's legacy pages/ mode); route through run_app() instead."""
    if "selection" not in st.session_state:
        run_app()
        st.stop()
    return st.session_state["selection"]
