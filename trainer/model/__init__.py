"""The model layer: the base model and its copies (twins, adapters, dtype copies), key/value cache views, memory
release and pause points; shared by training, the gate and serving, and importing none of them."""
