"""Natural-language understanding: the intent catalogue and the annotators that read messages."""
