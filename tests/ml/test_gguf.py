"""ml.gguf's refusals, before any heavy work: a file that is not GGUF, an architecture transformers
does not load from GGUF, and a quantization the gguf package cannot dequantize, each with a message
naming the problem and what would work; nothing is left in the target. (The real SmolLM2 GGUF is
converted by tests/ml/demo/test_real.py and tests/webapp/catalog/test_gguf.py.)"""
import numpy as np
import pytest

from ml.gguf import UnsupportedGGUF, convert_gguf, inspect_gguf, supported_types


def write_gguf(path, architecture, dtype):
    import gguf

    writer = gguf.GGUFWriter(str(path), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=dtype))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_refusals_name_the_problem(tmp_path):
    (tmp_path / "junk.gguf").write_bytes(b"not a gguf file at all")
    with pytest.raises(UnsupportedGGUF, match="not a readable GGUF file"):
        inspect_gguf(tmp_path / "junk.gguf")
    with pytest.raises(UnsupportedGGUF, match="architecture 'rwkv6' is not one transformers loads"):
        inspect_gguf(write_gguf(tmp_path / "rwkv.gguf", "rwkv6", np.float32))
    with pytest.raises(UnsupportedGGUF, match="quantization I8 cannot be dequantized.*supported: .*Q4_1"):
        convert_gguf(write_gguf(tmp_path / "int8.gguf", "llama", np.int8), tmp_path / "out")
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.partial-*"))


def test_supported_types_cover_the_common_quantizations():
    assert {"F32", "F16", "Q4_0", "Q4_1", "Q8_0", "Q4_K", "Q6_K"} <= supported_types()


def test_a_supported_header_is_described(tmp_path):
    info = inspect_gguf(write_gguf(tmp_path / "f32.gguf", "llama", np.float32))
    assert info.architecture == "llama" and info.tensor_types == {"F32": 1} and not info.has_chat_template
