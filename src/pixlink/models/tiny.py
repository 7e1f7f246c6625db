"""Tiny random-weight models of every hub architecture pixlink loads, with their own processors.

No model hub is needed: each builder makes a small config, random weights (seeded), and the
architecture's *own* processor classes (``CLIPProcessor`` with a ``CLIPImageProcessorPil`` and
a ``CLIPTokenizer``, ``SamProcessor``, ``Owlv2Processor``, ``GroundingDinoProcessor``,
``Idefics3Processor``...) built from a tiny vocabulary made here with the ``tokenizers`` /
``sentencepiece`` libraries, and writes them with ``save_pretrained`` into a directory. The
backends then load that directory through the same ``model=<dir>`` code path users take
with real weights, which checks loading, preprocessing, hidden-state plumbing and shapes.

The outputs are meaningless (random weights): use these for plumbing, never for quality.

    >>> from pixlink.models.tiny import build_tiny
    >>> path = build_tiny("clip", "/tmp/tiny-clip")          # doctest: +SKIP
    >>> from pixlink.models import Profile
    >>> enc = Profile("hub", options={"image_text": {"model": str(path)}}).get("image_text")  # doctest: +SKIP

Also on the command line: ``pixlink models tiny OUT_DIR --arch clip``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ..errors import Errors, InputError

# Image sizes of the tiny models (pixels of the processed square image).
TINY_IMAGE = 32
TINY_SAM_IMAGE = 64

_WORDS = ("a photo of the red box person cat dog car street hat man woman city river who what is in "
          "entity name type sentence answer briefly tell me which").split()


def _byte_level_alphabet() -> list[str]:
    from tokenizers.pre_tokenizers import ByteLevel

    return sorted(ByteLevel.alphabet())


def _clip_tokenizer(max_length: int) -> Any:
    """A ``CLIPTokenizer`` whose vocab is the byte-level alphabet (plain and ``</w>`` forms)
    then CLIP's two special tokens last (as in CLIP, where they are 49406 and 49407: OWLv2
    treats a query whose first id is 0 as padding), with no merges: every string tokenises,
    byte by byte."""
    from transformers import CLIPTokenizer

    vocab: dict[str, int] = {}
    for ch in _byte_level_alphabet():
        vocab.setdefault(ch, len(vocab))
        vocab.setdefault(ch + "</w>", len(vocab))
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    return CLIPTokenizer(vocab=vocab, merges=[], model_max_length=max_length)


def _gpt2_tokenizer(specials: list[str], chat_template: str | None, **kw: Any) -> Any:
    """A byte-level BPE ``GPT2Tokenizer`` (the class SmolLM / SmolVLM use) with no merges."""
    from transformers import GPT2Tokenizer

    vocab = {s: i for i, s in enumerate(specials)}
    for ch in _byte_level_alphabet():
        vocab.setdefault(ch, len(vocab))
    tok = GPT2Tokenizer(vocab=vocab, merges=[], **kw)
    if chat_template is not None:
        tok.chat_template = chat_template
    return tok


def _wordpiece_tokenizer() -> Any:
    """A ``BertTokenizer`` with a tiny WordPiece vocab (letters, digits, a few words)."""
    from transformers import BertTokenizer

    chars = "abcdefghijklmnopqrstuvwxyz0123456789"
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "?", "!", "'", "-", *_WORDS, *chars,
             *("##" + c for c in chars)]
    vocab = {w: i for i, w in enumerate(dict.fromkeys(words))}
    return BertTokenizer(vocab=vocab, do_lower_case=True)


def _seed() -> None:
    import torch

    torch.manual_seed(0)


# -- builders ----------------------------------------------------------------------------------


def _build_clip(out: Path) -> None:
    from transformers import CLIPConfig, CLIPModel, CLIPProcessor
    from transformers.models.clip.image_processing_pil_clip import CLIPImageProcessorPil

    tok = _clip_tokenizer(max_length=32)
    cfg = CLIPConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=32, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        # 12 layers like ViT-B, so that IIER's layers 4, 10, 11, 12 exist
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=12, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8),
        projection_dim=16,
    )
    CLIPModel(cfg).eval().save_pretrained(out)
    ip = CLIPImageProcessorPil(size={"shortest_edge": TINY_IMAGE}, crop_size={"height": TINY_IMAGE, "width": TINY_IMAGE})
    CLIPProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)


def _build_siglip(out: Path) -> None:
    import tempfile

    import sentencepiece as spm
    from transformers import SiglipConfig, SiglipModel, SiglipProcessor, SiglipTokenizer
    from transformers.models.siglip.image_processing_pil_siglip import SiglipImageProcessorPil

    with tempfile.TemporaryDirectory() as tmp:
        corpus = Path(tmp) / "corpus.txt"
        corpus.write_text(("a photo of a cat. the red car on the street. a person with a hat. " * 8 + "\n") * 4)
        spm.SentencePieceTrainer.train(
            input=str(corpus), model_prefix=str(Path(tmp) / "spiece"), vocab_size=60, model_type="unigram",
            character_coverage=1.0, pad_id=0, eos_id=1, unk_id=2, bos_id=-1, pad_piece="<pad>", eos_piece="</s>",
            unk_piece="<unk>", hard_vocab_limit=False, minloglevel=2,
        )
        tok = SiglipTokenizer(vocab_file=str(Path(tmp) / "spiece.model"), model_max_length=16)
        cfg = SiglipConfig(
            text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                             num_attention_heads=2, max_position_embeddings=16, pad_token_id=0, eos_token_id=1,
                             bos_token_id=None),
            vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=2,
                               image_size=TINY_IMAGE, patch_size=8),
        )
        SiglipModel(cfg).eval().save_pretrained(out)
        ip = SiglipImageProcessorPil(size={"height": TINY_IMAGE, "width": TINY_IMAGE})
        SiglipProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)


def _build_sam(out: Path) -> None:
    from transformers import SamConfig, SamModel, SamProcessor
    from transformers.models.sam.image_processing_pil_sam import SamImageProcessorPil

    s = TINY_SAM_IMAGE
    cfg = SamConfig(
        vision_config=dict(hidden_size=32, output_channels=16, num_hidden_layers=2, num_attention_heads=2,
                           image_size=s, patch_size=8, window_size=4, global_attn_indexes=[1], num_pos_feats=8,
                           mlp_dim=64),
        prompt_encoder_config=dict(hidden_size=16, image_size=s, patch_size=8, mask_input_channels=8),
        mask_decoder_config=dict(hidden_size=16, mlp_dim=32, num_attention_heads=2, iou_head_hidden_dim=16),
    )
    SamModel(cfg).eval().save_pretrained(out)
    ip = SamImageProcessorPil(size={"longest_edge": s}, pad_size={"height": s, "width": s},
                              mask_size={"longest_edge": s // 2}, mask_pad_size={"height": s // 2, "width": s // 2})
    SamProcessor(image_processor=ip).save_pretrained(out)


def _build_owlv2(out: Path) -> None:
    from transformers import Owlv2Config, Owlv2ForObjectDetection, Owlv2Processor
    from transformers.models.owlv2.image_processing_pil_owlv2 import Owlv2ImageProcessorPil

    tok = _clip_tokenizer(max_length=16)
    cfg = Owlv2Config(
        text_config=dict(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=2, max_position_embeddings=16, bos_token_id=tok.bos_token_id,
                         eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id),
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=8),
        projection_dim=32,  # OWLv2's class head needs projection_dim == text hidden_size (512 in the real model)
    )
    Owlv2ForObjectDetection(cfg).eval().save_pretrained(out)
    ip = Owlv2ImageProcessorPil(size={"height": TINY_IMAGE, "width": TINY_IMAGE})
    Owlv2Processor(image_processor=ip, tokenizer=tok).save_pretrained(out)


def _build_grounding_dino(out: Path) -> None:
    from transformers import GroundingDinoConfig, GroundingDinoForObjectDetection, GroundingDinoProcessor
    from transformers.models.grounding_dino.image_processing_pil_grounding_dino import GroundingDinoImageProcessorPil

    tok = _wordpiece_tokenizer()
    cfg = GroundingDinoConfig(
        backbone_config=dict(model_type="swin", image_size=64, patch_size=4, embed_dim=8, depths=[1, 1, 1, 1],
                             num_heads=[1, 1, 2, 2], window_size=4, out_indices=[2, 3, 4]),
        text_config=dict(model_type="bert", vocab_size=len(tok), hidden_size=32, num_hidden_layers=1,
                         num_attention_heads=2, intermediate_size=32, max_position_embeddings=64),
        # d_model must be a multiple of 32 (GroupNorm(32, d_model)); decoder_layers >= 2 for the tied box heads
        d_model=32, encoder_layers=1, decoder_layers=2, encoder_ffn_dim=32, decoder_ffn_dim=32,
        encoder_attention_heads=2, decoder_attention_heads=2, num_queries=20, max_text_len=32, encoder_n_points=2,
        decoder_n_points=2,
    )
    GroundingDinoForObjectDetection(cfg).eval().save_pretrained(out)
    ip = GroundingDinoImageProcessorPil(size={"shortest_edge": 64, "longest_edge": 96})
    GroundingDinoProcessor(image_processor=ip, tokenizer=tok).save_pretrained(out)


# SmolVLM's chat template (User:<image>text<end_of_utterance>\nAssistant:), shortened.
_SMOL_TEMPLATE = (
    "<|im_start|>{% for message in messages %}{{message['role'] | capitalize}}"
    "{% if message['content'][0]['type'] == 'image' %}{{':'}}{% else %}{{': '}}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}{{line['text']}}"
    "{% elif line['type'] == 'image' %}{{ '<image>' }}{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}"
)
_LM_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _build_idefics3(out: Path) -> None:
    """Idefics3 — the architecture of SmolVLM (``HuggingFaceTB/SmolVLM-256M-Instruct``)."""
    from transformers import Idefics3Config, Idefics3ForConditionalGeneration, Idefics3Processor
    from transformers.models.idefics3.image_processing_pil_idefics3 import Idefics3ImageProcessorPil

    tok = _gpt2_tokenizer(["<|endoftext|>", "<|im_start|>", "<end_of_utterance>"], None,
                          bos_token="<|im_start|>", eos_token="<end_of_utterance>", pad_token="<|endoftext|>",
                          unk_token="<|endoftext|>")
    ip = Idefics3ImageProcessorPil(size={"longest_edge": 2 * TINY_IMAGE}, max_image_size={"longest_edge": TINY_IMAGE},
                                   do_image_splitting=True)
    patch, scale = 8, 2
    seq_len = (TINY_IMAGE // patch) ** 2 // scale**2
    proc = Idefics3Processor(image_processor=ip, tokenizer=tok, image_seq_len=seq_len, chat_template=_SMOL_TEMPLATE)
    cfg = Idefics3Config(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                           image_size=TINY_IMAGE, patch_size=patch),
        text_config=dict(model_type="llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
                         num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                         pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id),
        image_token_id=proc.image_token_id, scale_factor=scale, pad_token_id=tok.pad_token_id,
    )
    model = Idefics3ForConditionalGeneration(cfg).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    proc.save_pretrained(out)


def _build_llama(out: Path) -> None:
    """A Llama causal LM (the architecture of SmolLM2) with a byte-level tokenizer and a chat template."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tok = _gpt2_tokenizer(["<|endoftext|>", "<|im_start|>", "<|im_end|>"], _LM_TEMPLATE,
                          bos_token="<|im_start|>", eos_token="<|im_end|>", pad_token="<|endoftext|>",
                          unk_token="<|endoftext|>")
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=512,
                      pad_token_id=tok.pad_token_id, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id)
    model = LlamaForCausalLM(cfg).eval()
    model.generation_config.eos_token_id = tok.eos_token_id
    model.generation_config.pad_token_id = tok.pad_token_id
    model.save_pretrained(out)
    tok.save_pretrained(out)


def _build_sentence_transformer(out: Path) -> None:
    """A sentence-transformers model: tiny BERT + mean pooling + normalisation, with
    ``query: `` / ``passage: `` prompts (e5-style) in its config."""
    import tempfile

    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    tok = _wordpiece_tokenizer()
    with tempfile.TemporaryDirectory() as tmp:
        cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                         intermediate_size=64, max_position_embeddings=128)
        BertModel(cfg).eval().save_pretrained(tmp)
        tok.save_pretrained(tmp)
        tr = models.Transformer(tmp, max_seq_length=64)
        pool = models.Pooling(cfg.hidden_size, pooling_mode="mean")
        st = SentenceTransformer(modules=[tr, pool, models.Normalize()], device="cpu",
                                 prompts={"query": "query: ", "passage": "passage: "})
        st.save(str(out))


BUILDERS: dict[str, Callable[[Path], None]] = {
    "clip": _build_clip,
    "siglip": _build_siglip,
    "sam": _build_sam,
    "owlv2": _build_owlv2,
    "grounding_dino": _build_grounding_dino,
    "idefics3": _build_idefics3,
    "llama": _build_llama,
    "sentence_transformer": _build_sentence_transformer,
}
ARCHES = tuple(BUILDERS)

# Which tiny architecture stands in for each hub backend's default model (for tests/benchmarks).
FOR_BACKEND = {
    "clip": "clip", "siglip": "siglip", "clip_vision": "clip", "sam": "sam", "sam_auto": "sam", "owlv2": "owlv2",
    "grounding_dino": "grounding_dino", "hub_vlm": "idefics3", "hub_lm": "llama",
    "hub_sentence_transformer": "sentence_transformer",
}


def build_tiny(arch: str, out_dir: str | Path) -> Path:
    """Build the tiny random model ``arch`` (one of :data:`ARCHES`) with its processor into
    ``out_dir`` (created; files are overwritten) and return the directory. Seeded: the same
    call writes the same weights. Raises E311 for an unknown ``arch``."""
    if arch not in BUILDERS:
        raise InputError(Errors.E311.format(arch=arch, known=", ".join(ARCHES)))
    out = Path(out_dir).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    _seed()
    BUILDERS[arch](out)
    return out
