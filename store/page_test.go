package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/opennvr/vms/store"
	"github.com/opennvr/vms/store/storetest"
)

// lister pages through one account's rows of some kind.
type lister struct {
	name   string
	create func(t *testing.T, s *store.Store, account uuid.UUID, cam *store.Camera, nvr uuid.UUID) uuid.UUID
	list   func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error)
}

var listers = []lister{
	{
		name: "ListCameras",
		create: func(t *testing.T, s *store.Store, account uuid.UUID, _ *store.Camera, _ uuid.UUID) uuid.UUID {
			return newCamera(t, s, account, "cam").ID
		},
		list: func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error) {
			rows, next, err := s.ListCameras(context.Background(), account, p)
			return ids(rows, func(c store.Camera) uuid.UUID { return c.ID }), next, err
		},
	},
	{
		name: "ListChannels",
		create: func(t *testing.T, s *store.Store, account uuid.UUID, cam *store.Camera, nvr uuid.UUID) uuid.UUID {
			return newChannel(t, s, account, cam.ID, nvr).ID
		},
		list: func(s *store.Store, account uuid.UUID, p store.Page) ([]uuid.UUID, string, error) {
			rows, next, err := s.ListChannels(context.Background(), account, p)
			return ids(rows, func(c store.Channel) uuid.UUID { return c.ID }), next, err
		},
	},
}

func TestListPaging(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		nvr := newNVR(t, s, "nvr-1", 100, store.NVRActive)
		for _, l := range listers {
			t.Run(l.name, func(t *testing.T) {
				mine, theirs := newAccount(t, s, "mine"), newAccount(t, s, "theirs")
				myCam, theirCam := newCamera(t, s, mine.ID, "c"), newCamera(t, s, theirs.ID, "c")
				var want []uuid.UUID
				for i := range 5 {
					want = append(want, l.create(t, s, mine.ID, myCam, nvr.ID))
					if i%2 == 0 { // interleave another account's rows
						l.create(t, s, theirs.ID, theirCam, nvr.ID)
					}
				}
				if l.name == "ListCameras" {
					want = append([]uuid.UUID{myCam.ID}, want...)
				}
				slices.SortFunc(want, func(a, b uuid.UUID) int { return slices.Compare(a[:], b[:]) })

				cases := []struct {
					limit int
					pages []int
				}{
					{1, repeat(1, len(want))},
					{2, pageSizes(len(want), 2)},
					{len(want) - 1, []int{len(want) - 1, 1}},
					{len(want), []int{len(want)}},
					{len(want) + 5, []int{len(want)}},
				}
				for _, tc := range cases {
					t.Run(fmt.Sprintf("limit %d", tc.limit), func(t *testing.T) {
						var got []uuid.UUID
						var sizes []int
						cursor := ""
						for range 20 {
							page, next, err := l.list(s, mine.ID, store.Page{Limit: tc.limit, Cursor: cursor})
							if err != nil {
								t.Fatal(err)
							}
							got, sizes = append(got, page...), append(sizes, len(page))
							if next == "" {
								break
							}
							cursor = next
						}
						if !slices.Equal(sizes, tc.pages) {
							t.Errorf("page sizes %v, want %v", sizes, tc.pages)
						}
						if !equalIDs(got, want) {
							t.Errorf("paged ids\n got %v\nwant %v", got, want)
						}
					})
				}

				t.Run("bad cursor", func(t *testing.T) {
					for _, c := range []string{"not-a-cursor", "1234", "../etc"} {
						if _, _, err := l.list(s, mine.ID, store.Page{Limit: 2, Cursor: c}); !errors.Is(err, store.ErrBadCursor) {
							t.Errorf("cursor %q: err %v, want ErrBadCursor", c, err)
						}
					}
				})
			})
		}
	})
}

// TestListNonPositiveLimit: a Page without a limit (or a negative one) must
// not crash the process; it should fall back to a default page size.
func TestListNonPositiveLimit(t *testing.T) {
	storetest.Each(t, func(t *testing.T, s *store.Store) {
		nvr := newNVR(t, s, "nvr-1", 100, store.NVRActive)
		w := newWorld(t, s, "acme", nvr.ID)
		newCamera(t, s, w.acct.ID, "second")
		sess := newSession(t, s, w.ch.ID)
		addRecording(t, s, w.ch.ID, sess.ID, t0, 30*time.Second)
		addRecording(t, s, w.ch.ID, sess.ID, t0.Add(30*time.Second), 30*time.Second)

		calls := map[string]func(p store.Page) (int, error){
			"ListCameras": func(p store.Page) (int, error) {
				rows, _, err := s.ListCameras(context.Background(), w.acct.ID, p)
				return len(rows), err
			},
			"ListChannels": func(p store.Page) (int, error) {
				rows, _, err := s.ListChannels(context.Background(), w.acct.ID, p)
				return len(rows), err
			},
			"ListRecordings": func(p store.Page) (int, error) {
				rows, _, err := s.ListRecordings(context.Background(), w.ch.ID, t0, t0.Add(time.Hour), p)
				return len(rows), err
			},
		}
		for _, name := range []string{"ListCameras", "ListChannels", "ListRecordings"} {
			for _, limit := range []int{0, -1} {
				t.Run(fmt.Sprintf("%s limit %d", name, limit), func(t *testing.T) {
					defer func() {
						if r := recover(); r != nil {
							t.Errorf("panicked: %v", r)
						}
					}()
					n, err := calls[name](store.Page{Limit: limit})
					if err != nil {
						t.Errorf("err %v", err)
					}
					if n == 0 {
						t.Error("returned no rows")
					}
				})
			}
		}
	})
}
