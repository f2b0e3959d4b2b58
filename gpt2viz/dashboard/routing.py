"""Routing: the page list, and one run of the app (mode, navigation, the shared sidebar, the
page). app.py calls run_app(); every page starts with selection()."""
from __future__ import annotations

import streamlit as st
from streamlit.runtime.scriptrunner_utils.script_run_context import get_script_run_ctx

from . import link, serving_mode, sidebar
from .controls import Selection

PAGES = [("pages/build.py", "Build & train", ":material/construction:"),
         ("pages/attention.py", "Attention", ":material/grid_on:"),
         ("pages/heads.py", "Head atlas", ":material/apps:"),
         ("pages/compare.py", "Compare & generate", ":material/compare_arrows:"),
         ("pages/rope.py", "RoPE geometry", ":material/rotate_right:"),
         ("pages/gqa.py", "GQA sharing", ":material/hub:"),
         ("pages/performance.py", "Latency & memory", ":material/speed:"),
         ("pages/experiments.py", "Experiments", ":material/science:"),
         ("pages/tasks.py", "Tasks", ":material/psychology:")]


def run_app():
    st.set_page_config(page_title="gpt2viz", page_icon=":material/visibility:", layout="wide")
    serving_mode.apply_mode()
    page = st.navigation([st.Page(path, title=title, icon=icon, default=i == 0)
                          for i, (path, title, icon) in enumerate(PAGES)])
    st.session_state["selection"] = sidebar.draw()
    link.show_link_notes()
    page.run()


def widget_keys_this_run() -> set:
    """The keys of the widgets drawn so far in this run (Streamlit keeps them per run; older
    versions on the context itself)."""
    ctx = get_script_run_ctx()
    return getattr(getattr(ctx, "shared", ctx), "widget_user_keys_this_run", set())


def selection() -> Selection:
    """The sidebar's choices. A run that starts in the page file itself (Streamlit's legacy
    pages/ mode: a fresh server's first deep link, and every rerun under AppTest) has not drawn
    the sidebar: route it through run_app() instead, so a page never reads last run's choices."""
    if "sb_variants" not in widget_keys_this_run():
        run_app()
        st.stop()
    return st.session_state["selection"]
