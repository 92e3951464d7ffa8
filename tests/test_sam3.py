"""SAM 3 from the cache equals upstream (tiny model, float32, one small non-square image).

References: ``Sam3Processor.set_image`` (backbone outputs), ``set_text_prompt`` and
``forward_grounding`` (concept prompts), ``Sam3Image.predict_inst`` (points, boxes, mask input).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

pytest.importorskip("sam3")

from samcache.errors import SamcacheError  # noqa: E402
from samcache.features.backend import Prompts  # noqa: E402

H, W = 60, 90  # non-square: x and y map to the 1008 frame separately
ATOL = 1e-5


def to_official_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A built model's state dict in ``sam3.pt``'s key layout (``detector.*``, ``tracker.*``): official-format
    files from random-init models, which the loaders are tested on."""
    from samcache.features.sam3.build import TRACKER_PREFIX

    return {("tracker." + key[len(TRACKER_PREFIX):]) if key.startswith(TRACKER_PREFIX) else "detector." + key: value
            for key, value in model.state_dict().items()}


@pytest.fixture(scope="module")
def sam3_setup(tmp_path_factory):
    import PIL.Image

    from samcache.features.sam3 import compat as sam3_compat
    from samcache.features.families import backend_for
    from samcache.features.sam3.build import build_random_sam3

    image = np.random.default_rng(0).integers(0, 256, (H, W, 3), dtype=np.uint8)
    reference = build_random_sam3("sam3_tiny", 0)
    ckpt = tmp_path_factory.mktemp("sam3") / "sam3_tiny_random.pt"
    torch.save(to_official_state_dict(reference), ckpt)  # sam3.pt's layout

    trunk_out = {}
    def keep_trunk(module, inputs, output):  # returns None: the output is left alone
        trunk_out["trunk"] = output[-1].clone()

    hook = reference.backbone.vision_backbone.trunk.register_forward_hook(keep_trunk)
    processor = sam3_compat.processor_for(reference, confidence_threshold=0.0)  # keep every query
    state = processor.set_image(PIL.Image.fromarray(image))
    hook.remove()

    backend = backend_for("sam3_tiny")
    encoder, _ = backend.build_encoder("sam3_tiny", None, 0)
    prepared, size = backend.prepare(image)
    exact = backend.encode(encoder, prepared[None], torch.tensor([size]), "fp32")
    decoder, _ = backend.build_decoder("sam3_tiny", None, 0)
    return dict(image=image, reference=reference, processor=processor, state=state, trunk=trunk_out["trunk"],
                backend=backend, cached=exact, decoder=decoder, ckpt=ckpt, text={})


def _upstream_text(s, phrase):
    """Sam3Processor.set_text_prompt's state for ``phrase`` (every query kept) and forward_grounding's
    semantic_seg from the same call; computed once per phrase."""
    if phrase not in s["text"]:
        ref, seen = s["reference"], {}
        grounding = ref.forward_grounding

        def keep(*args, **kwargs):
            seen["out"] = grounding(*args, **kwargs)
            return seen["out"]

        ref.forward_grounding = keep
        try:
            state = s["processor"].set_text_prompt(phrase, s["state"])
        finally:
            del ref.forward_grounding
        s["text"][phrase] = dict(scores=state["scores"].clone(), masks_logits=state["masks_logits"].clone(),
                                 masks=state["masks"].clone(), semantic=seen["out"]["semantic_seg"][0, 0].clone())
    return s["text"][phrase]


def test_cached_trunk_and_recomputed_necks_equal_upstream_backbone(sam3_setup):
    s = sam3_setup
    assert s["cached"]["trunk"].shape == (1, 64, 72, 72)
    torch.testing.assert_close(s["cached"]["trunk"], s["trunk"], atol=ATOL, rtol=0)
    mine = s["decoder"].backbone_out(s["cached"]["trunk"])
    ref = s["state"]["backbone_out"]
    for key in ("backbone_fpn", "vision_pos_enc"):
        for a, b in zip(mine[key], ref[key], strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
        for a, b in zip(mine["sam2_backbone_out"][key], ref["sam2_backbone_out"][key], strict=True):
            torch.testing.assert_close(a, b, atol=ATOL, rtol=0)
    assert [tuple(x.shape[-3:]) for x in mine["sam2_backbone_out"]["backbone_fpn"]] == \
        [(4, 288, 288), (8, 144, 144), (32, 72, 72)]  # conv_s0 / conv_s1 applied as set_image does


def test_text_prompts_from_the_cache_equal_set_text_prompt(sam3_setup):
    s = sam3_setup
    backend = s["backend"]
    phrases = ["car", "road", "car"]  # one batched call, a repeated phrase included
    results = backend.decode_text(s["decoder"], s["cached"], torch.zeros(len(phrases), dtype=torch.long), phrases)
    for phrase, res in zip(phrases, results):
        ref = _upstream_text(s, phrase)
        torch.testing.assert_close(res.scores * res.presence, ref["scores"], atol=ATOL, rtol=0)
        probs = torch.nn.functional.interpolate(res.mask_logits[:, None], (H, W), mode="bilinear",
                                                align_corners=False).sigmoid()
        torch.testing.assert_close(probs, ref["masks_logits"], atol=ATOL, rtol=0)
        masks = backend.upsample_text_masks(res.mask_logits, (H, W))
        assert (masks != ref["masks"][:, 0]).sum() <= 2  # only pixels within ATOL of 0.5 may differ
        torch.testing.assert_close(res.semantic_logits, ref["semantic"], atol=ATOL, rtol=0)
    with pytest.raises(SamcacheError, match="empty"):
        backend.decode_text(s["decoder"], s["cached"], torch.zeros(0, dtype=torch.long), [])


def _decode_points(s, features, coords, labels, box=None, mask_input=None, multimask=True):
    backend = s["backend"]
    pts = None if coords is None else torch.tensor(backend.to_input_frame(coords, (H, W)), dtype=torch.float32)[None]
    lab = None if labels is None else torch.tensor(labels)[None]
    boxes = None if box is None else torch.tensor(backend.to_input_frame(np.reshape(box, (2, 2)), (H, W)),
                                                  dtype=torch.float32).reshape(1, 4)
    mask = None if mask_input is None else torch.as_tensor(mask_input)[None]
    low, scores = backend.decode(s["decoder"], features, torch.tensor([0]), Prompts(pts, lab, boxes, mask), multimask)
    masks = backend.postprocess(low, (1008, 1008), (H, W)) > 0
    return masks[0].numpy(), scores[0].numpy(), backend.feedback(low)[0].numpy()


def test_points_boxes_and_mask_input_equal_predict_inst(sam3_setup):
    s = sam3_setup
    ref = s["reference"]
    features = dict(s["cached"])  # {"trunk": ...}: the tracker's maps are recomputed, the caller's dict kept
    coords, labels = np.array([[70.0, 12.0], [20.0, 50.0]]), np.array([1, 0])
    cases = [dict(coords=coords[:1], labels=labels[:1]), dict(coords=coords, labels=labels, multimask=False),
             dict(coords=None, labels=None, box=np.array([10.0, 5.0, 80.0, 40.0]))]
    for case in cases:
        multimask = case.get("multimask", True)
        m_ref, s_ref, low_ref = ref.predict_inst(s["state"], point_coords=case["coords"], point_labels=case["labels"],
                                                 box=case.get("box"), multimask_output=multimask)
        m, sc, low = _decode_points(s, features, case["coords"], case["labels"], case.get("box"), multimask=multimask)
        assert low.shape == low_ref.shape == ((3 if multimask else 1), 288, 288)
        np.testing.assert_allclose(sc, s_ref, atol=ATOL)
        np.testing.assert_allclose(low, low_ref, atol=ATOL)
        assert (m != m_ref).sum() <= 2
    # a second round with the last prediction's logits as mask_input
    m_ref, s_ref, low_ref = ref.predict_inst(s["state"], point_coords=coords, point_labels=labels,
                                             mask_input=low[:1], multimask_output=False)
    m, sc, low2 = _decode_points(s, features, coords, labels, mask_input=low[:1], multimask=False)
    np.testing.assert_allclose(low2, low_ref, atol=ATOL)
    np.testing.assert_allclose(sc, s_ref, atol=ATOL)
    assert (m != m_ref).sum() <= 2
    assert list(features) == ["trunk"]  # decode never changes its caller's dict


def test_official_format_checkpoint_loads_strictly(sam3_setup, tmp_path):
    from samcache.features.sam3.build import build_sam3

    s = sam3_setup
    model, weights = build_sam3("sam3_tiny", s["ckpt"], seed=1)  # random init overwritten by the file
    expected = s["reference"].state_dict()
    assert not weights.random
    assert all(torch.equal(v, expected[k]) for k, v in model.state_dict().items())
    state = torch.load(s["ckpt"], weights_only=True)
    assert {k.split(".")[0] for k in state} == {"detector", "tracker"}

    missing = dict(state)
    del missing["detector.dot_prod_scoring.hs_proj.weight"]
    torch.save({"model": missing}, tmp_path / "missing.pt")  # upstream also accepts {"model": ...}
    with pytest.raises(SamcacheError, match=r"1 missing keys \['detector.dot_prod_scoring.hs_proj.weight'\]") as e:
        build_sam3("sam3_tiny", tmp_path / "missing.pt")
    assert "\n" not in str(e.value)
    extra = dict(state, **{"tracker.extra.weight": torch.zeros(1), "other.bias": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(SamcacheError, match=r"2 unexpected keys \['other.bias', 'tracker.extra.weight'\]"):
        build_sam3("sam3_tiny", tmp_path / "extra.pt")


def test_bad_checkpoints_get_one_line_and_name_the_family(sam3_setup, tmp_path):
    from samcache.features.sam1.build import build_random_sam, check_weights
    from samcache.features.sam2.build import build_sam2, load_sam2_state_dict
    from samcache.features.sam3.build import build_sam3

    s = sam3_setup
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(s["ckpt"].read_bytes()[:4000])
    sam1 = tmp_path / "sam1.pth"
    torch.save(build_random_sam("tiny", 0).state_dict(), sam1)
    sam2 = tmp_path / "sam2.pt"
    torch.save({"model": build_sam2("sam2.1_hiera_t", None, 0, allow_random=True)[0].state_dict()}, sam2)
    before = sorted(p.name for p in tmp_path.iterdir())
    cases = [(lambda: build_sam3("sam3", truncated), "is not a PyTorch checkpoint"),
             (lambda: build_sam3("sam3", sam1), "is a SAM 1 checkpoint (tiny), not SAM 3; pass --model-type tiny"),
             (lambda: build_sam3("sam3", sam2),
              "is a SAM 2.1 checkpoint (sam2.1_hiera_t), not SAM 3; pass --model-type sam2.1_hiera_t"),
             (lambda: check_weights("vit_b", s["ckpt"]),
              "is a SAM 3 checkpoint (sam3_tiny), not SAM 1; pass --model-type sam3_tiny"),
             (lambda: load_sam2_state_dict(s["ckpt"], "sam2.1_hiera_t"),
              "is a SAM 3 checkpoint (sam3_tiny), not SAM 2.1; pass --model-type sam3_tiny"),
             (lambda: build_sam3("sam3", s["ckpt"]),
              "is a SAM 3 checkpoint (sam3_tiny), not sam3; pass --model-type sam3_tiny"),
             (lambda: build_sam3("sam3", None), "sam3 needs --checkpoint (e.g. checkpoints/sam3.pt)")]
    for call, message in cases:
        with pytest.raises(SamcacheError) as e:
            call()
        line = e.value.worded()  # what the CLI prints after "Error: "
        assert message in line and "\n" not in line and "--" not in str(e.value), line
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written
    from samcache.features.checkpoints import identify_checkpoint

    assert identify_checkpoint(s["ckpt"]) == "sam3_tiny"  # demo --model-type auto picks the tiny model


def test_family_descriptor_is_torch_free_and_matches_the_model(sam3_setup):
    import subprocess
    import sys

    code = ("import sys; from samcache.features.families import family_of; f = family_of('sam3'); "
            "assert 'torch' not in sys.modules; print(f.frame, f.features['trunk'], f.head_channels())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "(1008, 1008) (1024, 72, 72) {'trunk': 1024}", out.stderr[-500:]
    from samcache.features.families import backend_for, family_of

    tiny = family_of("sam3_tiny")
    assert tuple(sam3_setup["cached"]["trunk"].shape[1:]) == tiny.features["trunk"]
    assert backend_for("sam3").info.name == "sam3" and backend_for("sam3_tiny") is sam3_setup["backend"]
    xy = sam3_setup["backend"].to_input_frame(np.array([[W, H], [0.0, 0.0]]), (H, W))
    np.testing.assert_allclose(xy, [[1008, 1008], [0, 0]])


def test_concept_label_maps_equal_a_composition_of_set_text_prompt(sam3_setup):
    from samcache.data.labels import IGNORE
    from samcache.evaluation.concept_decoding import segment_by_concepts
    from samcache.evaluation.concepts import InstanceComposition, phrase_map

    s = sam3_setup
    phrases = phrase_map("seed5")
    refs = {}
    for c, phrase in phrases.prompts():  # upstream, one phrase at a time, every query kept
        ref = _upstream_text(s, phrase)
        refs[phrase] = (c, ref["scores"].numpy(), ref["masks"][:, 0].numpy())
    all_conf = np.sort(np.concatenate([r[1] for r in refs.values()]))
    thr = float(all_conf[len(all_conf) // 2] + all_conf[len(all_conf) // 2 + 1]) / 2  # between two values
    rule = InstanceComposition(score_threshold=thr, min_area=50)
    got = segment_by_concepts(s["backend"], s["decoder"], s["cached"], [(H, W)], phrases, "instances", rule)[0]
    expected = np.full((H, W), IGNORE)
    painted = []
    for c, scores, masks in refs.values():
        painted += [(scores[q], c, masks[q]) for q in range(len(scores))
                    if scores[q] >= thr and masks[q].sum() >= 50]
    for score, c, mask in sorted(painted, key=lambda t: t[0]):  # the highest score paints last
        expected[mask] = c
    assert len(got.instances.masks) == len(painted) > 0
    assert (got.label_map.numpy() != expected).sum() <= 4  # masks may differ where a logit is within 1e-5 of 0
    semantic = segment_by_concepts(s["backend"], s["decoder"], s["cached"], [(H, W)], phrases, "semantic-head")[0]
    assert semantic.label_map.shape == (H, W) and semantic.instances is None
    assert set(np.unique(semantic.label_map.numpy())) <= {c for c, _ in phrases.prompts()} | {IGNORE}


def test_one_neck_at_a_time_equals_both(sam3_setup):
    s = sam3_setup
    both = s["decoder"].backbone_out(s["cached"]["trunk"])
    det = s["decoder"].backbone_out(s["cached"]["trunk"], necks=("detector",))
    trk = s["decoder"].backbone_out(s["cached"]["trunk"], necks=("tracker",))
    assert det["sam2_backbone_out"] is None and "backbone_fpn" not in trk
    for a, b in zip(det["backbone_fpn"] + det["vision_pos_enc"], both["backbone_fpn"] + both["vision_pos_enc"]):
        assert torch.equal(a, b)
    for key in ("backbone_fpn", "vision_pos_enc"):
        for a, b in zip(trk["sam2_backbone_out"][key], both["sam2_backbone_out"][key], strict=True):
            assert torch.equal(a, b)


def test_tiny_weights_are_deterministic_and_all_initialised(sam3_setup):
    """Two builds with one seed agree on every tensor (torch.empty garbage would not), none is NaN."""
    s = sam3_setup
    ref = s["reference"].state_dict()
    other = s["decoder"].model.state_dict()  # built separately, trunk swapped for the cached one
    shared = [k for k in other if k in ref]
    assert len(shared) > 400 and all(torch.equal(other[k], ref[k]) for k in shared)
    assert all(torch.isfinite(v).all() for v in ref.values() if v.is_floating_point())
    text = s["reference"].backbone.language_backbone.encoder
    assert text.positional_embedding.abs().sum() > 0 and text.text_projection.abs().sum() > 0


def test_point_decoding_recomputes_the_tracker_neck_once_per_batch_and_keeps_the_callers_dict(sam3_setup,
                                                                                              monkeypatch):
    """Chunks and click rounds decode one batch many times: the neck runs once per trunk tensor, and the
    caller's features stay as given (a new trunk tensor gets its own maps)."""
    s = sam3_setup
    decoder, calls = s["decoder"], []
    backbone_out = decoder.backbone_out
    monkeypatch.setattr(decoder, "backbone_out", lambda *a, **k: calls.append(1) or backbone_out(*a, **k))
    features = {"trunk": s["cached"]["trunk"].clone()}
    prompts = Prompts(torch.tensor([[[500.0, 400.0]]]), torch.tensor([[1]]))
    first = s["backend"].decode(decoder, features, torch.tensor([0]), prompts, True)
    again = s["backend"].decode(decoder, features, torch.tensor([0]), prompts, True)
    assert len(calls) == 1 and list(features) == ["trunk"]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    other = {"trunk": features["trunk"] * 2}
    s["backend"].decode(decoder, other, torch.tensor([0]), prompts, True)
    assert len(calls) == 2
