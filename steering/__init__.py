"""Everything torch: load a VLM and an SAE, steer one feature, and read the model's words.

Importing this package is cheap; torch is imported only by the submodules that need it.
"""
