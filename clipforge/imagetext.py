"""Optional image-text scoring: a CLIP-style model through transformers, loaded lazily.

``ImageTextScorer`` embeds images and text in one space; ``image_text_scores`` maps
their cosine similarity to [0, 1]. ``ImageTextScorer.from_config`` builds a small
random model offline (with ``_tiny_char_tokenizer``), for tests and benchmarks.
Importing this module does not import torch or transformers.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .errors import ConfigError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def image_text_scores(image_embeddings: np.ndarray, text_embedding: np.ndarray) -> np.ndarray:
    """Cosine similarity of each image embedding with the text embedding, mapped from
    [-1, 1] to [0, 1] (``(cos + 1) / 2``). Inputs need not be normalised."""
    imgs = np.asarray(image_embeddings, dtype=np.float32)
    if imgs.ndim == 1:
        imgs = imgs[None, :]
    if imgs.shape[0] == 0:
        return np.zeros(0, dtype=np.float32)
    text = np.asarray(text_embedding, dtype=np.float32).reshape(-1)
    imgs = imgs / np.maximum(np.linalg.norm(imgs, axis=1, keepdims=True), 1e-12)
    text = text / max(float(np.linalg.norm(text)), 1e-12)
    cos = imgs @ text
    return np.clip((cos + 1.0) / 2.0, 0.0, 1.0).astype(np.float32)


def _tiny_char_tokenizer(vocab_size: int, max_length: int) -> Any:
    """An offline character-level tokenizer (no download): ids 0-3 are [PAD], [EOS],
    [UNK], [BOS]; then a space, lowercase letters, digits and punctuation, up to
    ``vocab_size``. For tests and plumbing, not quality."""
    from tokenizers import Regex, Tokenizer, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    vocab = {"[PAD]": 0, "[EOS]": 1, "[UNK]": 2, "[BOS]": 3}
    for ch in " abcdefghijklmnopqrstuvwxyz0123456789.,!?'-:;()\"":
        if len(vocab) >= vocab_size:
            break
        vocab.setdefault(ch, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single="[BOS] $A [EOS]", special_tokens=[("[BOS]", 3), ("[EOS]", 1)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="[BOS]", eos_token="[EOS]", pad_token="[PAD]",
        unk_token="[UNK]", model_max_length=max_length,
    )


def _features(output: Any) -> Any:
    """``get_*_features`` returns a tensor (transformers 4) or an output whose
    ``pooler_output`` holds the projected features (transformers 5)."""
    return output.pooler_output if hasattr(output, "pooler_output") else output


class ImageTextScorer:
    """A CLIP-style image/text embedder (``get_image_features``/``get_text_features``).

    Images are preprocessed here with OpenCV (shortest side resized to the model's
    ``image_size``, centre crop, mean/std from ``preprocessor_config.json`` or CLIP's),
    so neither PIL nor torchvision is needed. Embeddings are float32, L2-normalised.
    """

    def __init__(self, model: Any, tokenizer: Any, *, image_size: int,
                 mean: Sequence[float] = CLIP_MEAN, std: Sequence[float] = CLIP_STD,
                 source: str = "") -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.image_size = int(image_size)
        self.mean = np.asarray(mean, dtype=np.float32).reshape(1, 1, 3)
        self.std = np.asarray(std, dtype=np.float32).reshape(1, 1, 3)
        self.source = source
        self.dim = int(getattr(model.config, "projection_dim", 0)) or int(
            self.embed_text("a").shape[0]
        )

    @classmethod
    def from_pretrained(cls, path: str | Path) -> ImageTextScorer:
        """Load a local model directory (``save_pretrained`` layout: config.json,
        weights, tokenizer files, optional preprocessor_config.json). Never downloads.
        A missing or invalid directory raises ``ConfigError``."""
        p = Path(path)
        remedy = (
            "Point it at a local CLIP-style model directory written by save_pretrained "
            "(config.json, model weights, tokenizer files), or turn image-text scoring off."
        )
        if not p.is_dir() or not (p / "config.json").is_file():
            raise ConfigError(f"{p}: no image-text model here (no directory with config.json). "
                              + remedy)
        try:
            from transformers import AutoModel, AutoTokenizer

            model = AutoModel.from_pretrained(str(p), local_files_only=True)
            tokenizer = AutoTokenizer.from_pretrained(str(p), local_files_only=True)
        except Exception as exc:  # any loader failure is a configuration problem
            raise ConfigError(f"{p}: the image-text model could not be loaded ({exc}). "
                              + remedy) from exc
        if not (hasattr(model, "get_image_features") and hasattr(model, "get_text_features")):
            raise ConfigError(f"{p}: {type(model).__name__} is not an image-text model "
                              "(no get_image_features/get_text_features). " + remedy)
        size, mean, std = cls._preprocessing(p, model.config)
        return cls(model, tokenizer, image_size=size, mean=mean, std=std, source=str(p))

    @classmethod
    def from_config(cls, config: Any, *, tokenizer: Any = None, seed: int = 0) -> ImageTextScorer:
        """A ``CLIPModel`` with random weights (seeded) from ``config``; without a
        ``tokenizer`` an offline character-level one is built. For tests and plumbing."""
        import torch
        from transformers import CLIPModel

        text_cfg = config.text_config
        if tokenizer is None:
            tokenizer = _tiny_char_tokenizer(int(text_cfg.vocab_size),
                                             int(text_cfg.max_position_embeddings))
            # CLIP pools at the first EOS token (argmax of ids only for the legacy id 2).
            text_cfg.eos_token_id = tokenizer.eos_token_id
            text_cfg.bos_token_id = tokenizer.bos_token_id
            text_cfg.pad_token_id = tokenizer.pad_token_id
        state = torch.random.get_rng_state()
        try:
            torch.manual_seed(seed)
            model = CLIPModel(config)
        finally:
            torch.random.set_rng_state(state)
        return cls(model, tokenizer, image_size=int(config.vision_config.image_size),
                   source="<config>")

    @staticmethod
    def _preprocessing(path: Path, config: Any) -> tuple[int, tuple[float, ...], tuple[float, ...]]:
        size = int(config.vision_config.image_size)
        mean: tuple[float, ...] = CLIP_MEAN
        std: tuple[float, ...] = CLIP_STD
        pre = path / "preprocessor_config.json"
        if pre.is_file():
            try:
                data = json.loads(pre.read_text())
            except ValueError as exc:
                raise ConfigError(f"{pre}: not valid JSON ({exc}). Fix or delete it.") from exc
            mean = tuple(float(v) for v in data.get("image_mean", mean))
            std = tuple(float(v) for v in data.get("image_std", std))
        return size, mean, std

    def save_pretrained(self, path: str | Path) -> None:
        p = Path(path)
        p.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(str(p))
        self.tokenizer.save_pretrained(str(p))
        pre = {
            "image_processor_type": "CLIPImageProcessor",
            "do_resize": True,
            "size": {"shortest_edge": self.image_size},
            "do_center_crop": True,
            "crop_size": {"height": self.image_size, "width": self.image_size},
            "do_normalize": True,
            "image_mean": [float(v) for v in self.mean.reshape(-1)],
            "image_std": [float(v) for v in self.std.reshape(-1)],
        }
        (p / "preprocessor_config.json").write_text(json.dumps(pre, indent=2) + "\n")

    def _pixels(self, frame: np.ndarray) -> np.ndarray:
        img = np.asarray(frame)
        if img.ndim != 3 or img.shape[2] != 3:
            raise ValueError(f"expected an RGB image of shape (H, W, 3), got {img.shape}")
        s = self.image_size
        h, w = img.shape[:2]
        scale = s / min(h, w)
        nw, nh = max(s, int(round(w * scale))), max(s, int(round(h * scale)))
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        img = cv2.resize(img.astype(np.uint8, copy=False), (nw, nh), interpolation=interp)
        y0, x0 = (nh - s) // 2, (nw - s) // 2
        img = img[y0: y0 + s, x0: x0 + s].astype(np.float32) / 255.0
        return ((img - self.mean) / self.std).transpose(2, 0, 1)

    def embed_images(self, frames: list[np.ndarray]) -> np.ndarray:
        """RGB uint8 frames (H, W, 3) -> (n, d) float32 L2-normalised embeddings."""
        if not frames:
            return np.zeros((0, self.dim), dtype=np.float32)
        import torch

        pixels = torch.from_numpy(np.stack([self._pixels(f) for f in frames]))
        with torch.inference_mode():
            feats = _features(self.model.get_image_features(pixel_values=pixels))
        return _l2(feats.float().cpu().numpy())

    def embed_text(self, prompt: str) -> np.ndarray:
        """A prompt -> (d,) float32 L2-normalised embedding."""
        import torch

        limit = int(getattr(getattr(self.model.config, "text_config", None),
                            "max_position_embeddings", 77))
        enc = self.tokenizer([prompt], truncation=True, max_length=limit, return_tensors="pt")
        kwargs = {"input_ids": enc["input_ids"]}
        if "attention_mask" in enc:
            kwargs["attention_mask"] = enc["attention_mask"]
        with torch.inference_mode():
            feats = _features(self.model.get_text_features(**kwargs))
        return _l2(feats.float().cpu().numpy())[0]


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return (x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)).astype(np.float32)
