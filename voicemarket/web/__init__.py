"""voicemarket's HTTP services: the conventions they all follow, written once
(:mod:`voicemarket.web.api`; their settings: :mod:`voicemarket.web.settings`).

Used by the index's read API (``python -m voicemarket.index serve``) and meant for the
operators' streaming speech API and the DApp's server. See docs/index.md, "HTTP conventions".
"""
