"""Independent test corpora: models written as their authors publish them, for checking xconv against."""
