"""Story co-writing: the passage tree, prompt building, generation and export, used by skills and channels."""
