"""Indexing and gathering: basic indexing and slicing, take, take_along, concat."""

from __future__ import annotations
