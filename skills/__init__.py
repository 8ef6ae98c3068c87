"""The skills that ship with Tandem; `SHIPPED_SKILLS` is what the composition root registers."""
