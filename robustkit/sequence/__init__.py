"""Sequence models: position encoders (sinusoidal, learned, FLOATER, recurrent), a fixed-step
RK4 solver, a small transformer and tasks where position matters.

Seed 003 §4.1 (FLOATER, "Learning to encode position for transformer models"); chapter 9.
"""
from .encoders import (ENCODERS, FloaterBiasEncoder, FloaterDynamics, FloaterEncoder, LearnedEncoder,
                       PositionEncoder, RecurrentEncoder, SinusoidalEncoder, build_encoder,
                       sinusoidal_encoding, sinusoidal_frequencies, sinusoidal_velocity)
from .ode import rk4_solve, rk4_step
from .tasks import (IGNORE, accuracy_by_length, image_rows, lag_copy, pad_front, pad_rows,
                    token_accuracy, token_cross_entropy)
from .transformer import SequenceTransformer, TransformerBlock, warm_start

__all__ = [
    "ENCODERS", "PositionEncoder", "SinusoidalEncoder", "LearnedEncoder", "FloaterDynamics",
    "FloaterEncoder", "FloaterBiasEncoder", "RecurrentEncoder", "build_encoder",
    "sinusoidal_encoding", "sinusoidal_frequencies", "sinusoidal_velocity",
    "rk4_solve", "rk4_step",
    "IGNORE", "lag_copy", "pad_front", "token_cross_entropy", "token_accuracy", "accuracy_by_length",
    "image_rows", "pad_rows",
    "SequenceTransformer", "TransformerBlock", "warm_start",
]
