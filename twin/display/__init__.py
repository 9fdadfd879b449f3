"""The meter's display: pure rendering (layout, pages, render) and the display service."""

from __future__ import annotations

from twin.display.render import DisplayState, render

__all__ = ["DisplayState", "render"]
