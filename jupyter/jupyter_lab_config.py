# JupyterLab settings for photolab's notebooks (`make lab` loads this file with --config).
# Nothing leaves the machine: no news feed, no update check.
from pathlib import Path

c = get_config()  # noqa: F821 - provided by Jupyter's config loader

# The server side: no Atom feed is fetched (the lab's page config says news are disabled)
# and no request for the latest release is made.
c.LabApp.news_url = None
c.LabApp.check_for_updates_class = "jupyterlab.handlers.announcements.NeverCheckForUpdate"
# The browser side: settings/overrides.json sets "fetchNews" to "false" (Never) and
# "checkForUpdates" to false, so the lab never asks "Would you like to get notified about
# official Jupyter news?".
c.LabApp.app_settings_dir = str(Path(__file__).resolve().parent / "settings")
