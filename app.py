"""Placeholder until the dashboard lands: shows the library is installed and working."""
import streamlit as st

from gpt2viz import PRESETS

st.title("gpt2viz")
st.write("The dashboard pages are being built; the library is ready. Variants:")
st.table({name: str(cfg) for name, cfg in PRESETS.items()})
