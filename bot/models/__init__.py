"""Language-model runtime: one LanguageModel protocol over local and remote backends."""
