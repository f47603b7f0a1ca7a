"""A conformant GA/T 1400 view library (``sharpeyes viid-server``), apart from the client side."""
