"""hubcard: train a PEFT adapter from one config, evaluate it against its base model, and publish it
to the Hugging Face Hub with a complete model card."""

__version__ = "0.1.0"
