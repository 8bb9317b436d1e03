//go:build !linux

package e2e_test

import (
	"errors"
	"time"
)

// The ingest benchmark reads /proc; elsewhere it skips.

var errNoProc = errors.New("no /proc on this system")

func procCPU(int) (time.Duration, error)          { return 0, errNoProc }
func procMemory(int) (rss, peak int64, err error) { return 0, 0, errNoProc }
func childrenWithEnv(string) []int                { return nil }
func machineCPU() (busy, total int64)             { return 0, 0 }
func selfCPU() time.Duration                      { return 0 }
