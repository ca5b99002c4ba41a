"""The findings: for each claim name, the dataclass of its manifest parameters."""

from verify.findings import culture, othello

CLAIM_SCHEMAS: dict[str, type] = {
    "feature_tracks_empty_square": othello.FeatureTracksEmptySquare,
    "neuron_fires_on_one_move": othello.NeuronFiresOnOneMove,
    "legal_move_rate": othello.LegalMoveRate,
    "solved_rate": culture.SolvedRate,
    "ablation_breaks_one_task": culture.AblationBreaksOneTask,
    "sae_splice_restores": culture.SAESpliceRestores,
}
