"""Text front end: normalisation, sentence and language splitting, grapheme-to-phoneme."""
