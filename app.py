"""gpt2viz dashboard: `streamlit run app.py`. Routes the pages; the sidebar is shared
(gpt2viz/dashboard/routing.py)."""
from gpt2viz.dashboard import routing

routing.run_app()
