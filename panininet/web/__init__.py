"""The web page (Gradio): ``panininet-web`` or ``python app.py``.

:mod:`panininet.web.jobs` does the work (networks loaded once, one job per network, photos and clips through the
same :class:`~panininet.restorer.PaniniRestorer` as the CLI, progress, cancel, per-session folders) and imports no
Gradio; :mod:`panininet.web.page` is the page; :mod:`panininet.web.server` parses the flags and serves it. Nothing
in the library imports this package.
"""
