"""The Lark grammar of the bp language (`bp.lark`), shipped as package data of `bpc`."""
