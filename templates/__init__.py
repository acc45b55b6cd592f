"""The Jinja templates that render generated modules, shipped as package data of `bpc`."""
