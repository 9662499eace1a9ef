"""A configured image-text model flows from settings through the visual stage into the
selection evidence (a tiny CLIP built from a config: no weights can be downloaded)."""

from __future__ import annotations

from conftest import media
from test_select import flat_audio, transcript_from
from test_visual import _tiny_config

from clipforge.config import Settings
from clipforge.imagetext import ImageTextScorer
from clipforge.picks import SelectionParams
from clipforge.probe import probe
from clipforge.select import build_context, select
from clipforge.textanalysis import analyse_text
from tasks.stages import image_text_scorer, visual_task


def test_configured_model_scores_frames_against_the_prompt(tmp_path) -> None:
    model_dir = tmp_path / "tiny-clip"
    ImageTextScorer.from_config(_tiny_config(), seed=0).save_pretrained(model_dir)
    settings = Settings(image_text_model=str(model_dir))
    video = media("talk_en_42s__auto-editor_example.mp4")
    info = probe(video)
    track = visual_task.fn(str(video), "0" * 64, info.duration_us, settings)
    assert track.image_embeddings is not None
    assert track.image_embeddings.shape[0] == len(track.frame_times_us)

    scorer = image_text_scorer(settings)
    assert scorer is not None and image_text_scorer(settings) is scorer  # loaded once
    tr = transcript_from([(2.0, "Our pricing plan is simple and fair."),
                          (12.0, "Pricing again for everyone here today.")])
    ctx = build_context(tr, analyse_text(tr, None), flat_audio(42), "pricing", None, track,
                        scorer.embed_text("pricing"))
    picks = select(ctx, SelectionParams.for_target(20), prompt="pricing")
    evidence = dict(picks[0].candidate.evidence)
    assert 0.0 <= evidence["image_text"] <= 1.0 and "visual" in evidence


def test_no_model_configured_means_no_image_text() -> None:
    assert image_text_scorer(Settings()) is None
