package workflows

// AssembleVersion is the change id of the clip's assembly step, for the
// replay tests that stand in for code without it.
const AssembleVersion = assembleVersion
