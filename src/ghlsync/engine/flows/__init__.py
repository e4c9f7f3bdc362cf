"""What a claimed entity becomes: one sub-package per direction a change travels."""
