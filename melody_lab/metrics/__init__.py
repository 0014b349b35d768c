"""Evaluation metrics: FAD / FAD∞ with named embedders, CLAP score, MCC, attribute accuracy, RTF, CIs,
paired differences between rows; note statistics and prompt adherence of a transcription
(``musicality``, ``adherence``, ``transcribed``) by the pretrained basic-pitch model
(``transcription``, the ``basic-pitch`` embedder: ``[eval]`` extra, imported only when used); metric
validity checks (``degradations``, ``validity``).

See docs/metrics.md. Rule: every FAD is reported with its embedder, its reference set and n.
"""
from .adapters import LaionClapConfig, VGGishConfig  # registers "vggish", "laion_clap"; imports nothing optional
from .attributes import (AttributeAccuracy, AttributeProbe, attribute_prompts, fit_attribute_probes,
                         probe_attribute_accuracy, zero_shot_attribute_accuracy,
                         zero_shot_predictions)
from .clap_score import TextAudioScore, clap_score, mulan_cycle_consistency, text_audio_cosines
from .embedders import (EMBEDDERS, BasicPitchConfig, Embedder, EvalClapConfig, FeatureEmbedder, FeatureEmbedderConfig,
                        build_embedder)
from .fad import (FADInfinityResult, FADResult, embedding_statistics, fad, fad_infinity, fad_infinity_fadtk,
                  fad_per_clip, frechet_distance)
from .rtf import RTFResult, StageTimer, measure_rtf
from .stats import (ConfidenceInterval, PairedDifference, bootstrap_fad_ci, bootstrap_mean_ci, paired_bootstrap,
                    paired_fad_difference, paired_mean_difference, rank_agreement)

__all__ = [
    "AttributeAccuracy", "AttributeProbe", "BasicPitchConfig", "ConfidenceInterval", "EMBEDDERS", "Embedder",
    "EvalClapConfig", "FADInfinityResult", "FADResult", "FeatureEmbedder", "FeatureEmbedderConfig", "LaionClapConfig",
    "PairedDifference", "RTFResult", "StageTimer", "TextAudioScore", "VGGishConfig", "attribute_prompts",
    "bootstrap_fad_ci", "bootstrap_mean_ci", "build_embedder", "clap_score", "embedding_statistics", "fad",
    "fad_infinity", "fad_infinity_fadtk", "fad_per_clip", "fit_attribute_probes", "frechet_distance", "measure_rtf",
    "mulan_cycle_consistency", "paired_bootstrap", "paired_fad_difference", "paired_mean_difference",
    "probe_attribute_accuracy", "rank_agreement", "text_audio_cosines", "zero_shot_attribute_accuracy",
    "zero_shot_predictions",
]
