"""CLIP on open_clip: loading (OpenAI files, open_clip tags, tiny random architectures), the tokenizer and
functional prompted image/text encoders. See clip/README.md."""
from .configs import TINY_CONFIGS, config_from_model, config_from_openai_state_dict, openai_heads
from .encoders import encode_image, encode_text, full_blocks, token_embedding
from .info import ModelInfo, model_info
from .loader import available_models, build_from_config, build_vision_tower, load, tiny_seed
from .tokenizer import EOT_TOKEN_ID, SOT_TOKEN_ID, tokenize
from .weights import OPENAI_MODELS, candidate_weight_paths, read_weights_file, resolve_weights_path
from .weights import save_open_clip_checkpoint, save_openai_state_dict

__all__ = ["EOT_TOKEN_ID", "ModelInfo", "OPENAI_MODELS", "SOT_TOKEN_ID", "TINY_CONFIGS", "available_models",
           "build_from_config", "build_vision_tower", "candidate_weight_paths", "config_from_model",
           "config_from_openai_state_dict", "encode_image", "encode_text", "full_blocks", "load", "model_info",
           "openai_heads", "read_weights_file", "resolve_weights_path", "save_open_clip_checkpoint",
           "save_openai_state_dict", "tiny_seed", "token_embedding", "tokenize"]
