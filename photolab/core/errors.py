"""One base class for the errors a user can cause (a bad file, folder, setting or catalog).

Every such error says which file or setting is at fault and what to do next, in one line;
the command line prints it without a traceback, and notebooks show it as a short message.
"""

from __future__ import annotations


class PhotolabError(Exception):
    """An error a user can cause and fix: the message names the file and the next step."""
