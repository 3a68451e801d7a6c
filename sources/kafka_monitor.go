package sources

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/sourcegraph/conc"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kmsg"
)

// This file owns the Kafka source's background work and its group
// membership: the goroutine that refreshes the consumer lag and says, at an
// interval, what the member waits for while it has no partition; and
// leaving the group as a static member.

const (
	// waitLogFirst is how long a member may wait for an assignment before
	// it says so; waitLogEvery is how often it says so again.
	waitLogFirst = 5 * time.Second
	waitLogEvery = 15 * time.Second
	// monitorTick is how often the monitor checks whether the member
	// waits.
	monitorTick = time.Second
)

// validInstanceID reports whether id is what Kafka accepts as a
// group.instance.id: the rule of topic names (topicRE).
func validInstanceID(id string) bool {
	return topicRE.MatchString(id) && id != "." && id != ".."
}

// monitor is the Kafka source's background goroutine; see Kafka.monitor.
type monitor struct {
	cancel context.CancelFunc
	wg     conc.WaitGroup
	// assigned is poked on every assignment: refresh the lag now. It is
	// made with the Kafka value, before the client can assign.
	assigned chan struct{}
}

// poke asks for a lag refresh now; it never blocks.
func (m *monitor) poke() {
	select {
	case m.assigned <- struct{}{}:
	default:
	}
}

// stop ends the goroutine and waits for it. Safe before start.
func (m *monitor) stop() {
	if m.cancel != nil {
		m.cancel()
		m.wg.Wait()
	}
}

// startMonitor starts the goroutine that refreshes the lag every
// LagInterval (and after each assignment) and logs while the member waits
// for partitions. Close stops it.
func (k *Kafka) startMonitor() {
	ctx, cancel := context.WithCancel(context.Background())
	k.mon.cancel = cancel
	k.mon.wg.Go(func() { k.monitor(ctx) })
}

func (k *Kafka) monitor(ctx context.Context) {
	adm := kadm.NewClient(k.cl)
	lagTick := time.NewTicker(k.cfg.LagInterval)
	defer lagTick.Stop()
	waitTick := time.NewTicker(monitorTick)
	defer waitTick.Stop()
	var (
		waitingSince = time.Now()
		lastLog      time.Time
		lagErrLogged bool
	)
	refresh := func() {
		rctx, cancel := context.WithTimeout(ctx, max(k.cfg.LagInterval, 5*time.Second))
		defer cancel()
		err := k.lag.refresh(rctx, adm, k.cfg.Group, k.cfg.Topics, k.ownedPartitions())
		switch {
		case err != nil && ctx.Err() == nil && !lagErrLogged:
			k.logger.Warn("consumer lag not refreshed; /metrics and /v1/status show the last values", "group", k.cfg.Group, "err", err)
			lagErrLogged = true
		case err == nil && lagErrLogged:
			k.logger.Info("consumer lag refreshed again", "group", k.cfg.Group)
			lagErrLogged = false
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-k.mon.assigned:
			refresh()
		case <-lagTick.C:
			refresh()
		case now := <-waitTick.C:
			if len(k.ownedPartitions()) > 0 {
				waitingSince, lastLog = time.Time{}, time.Time{}
				continue
			}
			if waitingSince.IsZero() {
				waitingSince = now
			}
			due := lastLog.IsZero() && now.Sub(waitingSince) >= waitLogFirst ||
				!lastLog.IsZero() && now.Sub(lastLog) >= waitLogEvery
			if due {
				k.logWaiting(ctx, adm, now.Sub(waitingSince))
				lastLog = now
			}
		}
	}
}

// logWaiting says that the member has no partition, for how long, and what
// the group is doing: its state and members, as the coordinator describes
// them.
func (k *Kafka) logWaiting(ctx context.Context, adm *kadm.Client, waited time.Duration) {
	attrs := []any{"group", k.cfg.Group, "topics", k.cfg.Topics, "waited", waited.Round(time.Second),
		"session_timeout", k.cfg.SessionTimeout, "instance_id", k.cfg.InstanceID}
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	described, err := adm.DescribeGroups(dctx, k.cfg.Group)
	if err == nil {
		err = described.Error()
	}
	if g, ok := described[k.cfg.Group]; ok && err == nil {
		members := make([]string, 0, len(g.Members))
		for _, m := range g.Members {
			who := m.ClientID + "@" + strings.TrimPrefix(m.ClientHost, "/")
			if m.InstanceID != nil {
				who = *m.InstanceID + " (" + who + ")"
			}
			members = append(members, who)
		}
		attrs = append(attrs, "group_state", g.State, "members", members)
	} else {
		attrs = append(attrs, "describe_error", err)
	}
	if k.cfg.InstanceID == "" {
		attrs = append(attrs, "hint", "a member that stopped without leaving the group (killed) holds its partitions until session_timeout passes; "+
			"set source.kafka.instance_id (stable per replica, distinct between replicas) so a restart takes its place at once")
	}
	k.logger.Info("waiting for partition assignment from group "+k.cfg.Group, attrs...)
}

// leaveGroup leaves the consumer group. kgo does not send a LeaveGroup for
// a static member (so that a restart finds its place kept), but a
// graceful stop here is a replica going away or being replaced: leaving
// lets the group give its partitions to the others at once. The leave names
// the member ID too, so it cannot remove a newer process that took over
// the instance ID.
func (k *Kafka) leaveGroup(ctx context.Context) error {
	memberID, _ := k.cl.GroupMetadata()
	if err := k.cl.LeaveGroupContext(ctx); err != nil || k.cfg.InstanceID == "" || memberID == "" {
		return err
	}
	id := k.cfg.InstanceID
	req := kmsg.NewPtrLeaveGroupRequest()
	req.Group = k.cfg.Group
	m := kmsg.NewLeaveGroupRequestMember()
	m.MemberID = memberID
	m.InstanceID = &id
	m.Reason = kmsg.StringPtr("replay stopped")
	req.Members = append(req.Members, m)
	resp, err := req.RequestWith(ctx, k.cl)
	if err != nil {
		return fmt.Errorf("leave group %q as static member %q: %w", k.cfg.Group, id, err)
	}
	errs := []error{kerr.ErrorForCode(resp.ErrorCode)}
	for _, rm := range resp.Members {
		errs = append(errs, kerr.ErrorForCode(rm.ErrorCode))
	}
	err = errors.Join(errs...)
	if errors.Is(err, kerr.UnknownMemberID) {
		return nil // kgo left already (see kgo.InstanceID), or the session expired
	}
	if err != nil {
		return fmt.Errorf("leave group %q as static member %q: %w", k.cfg.Group, id, err)
	}
	return nil
}
