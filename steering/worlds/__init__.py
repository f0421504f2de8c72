"""Worlds on pretrained weights fetched by pinned hash (the toy world, trained here, lives in steering.toy)."""
