package bench

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"runtime/pprof"
	"time"

	"github.com/sourcegraph/conc/pool"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
)

// broker is an in-process Kafka-protocol broker (franz-go's kfake)
// listening on a loopback TCP port. Its goroutines carry the pprof label
// stage=broker, so the end-to-end profile can set its CPU apart.
type broker struct {
	cluster *kfake.Cluster
	addrs   []string
}

func startBroker(ctx context.Context) (*broker, error) {
	var (
		c   *kfake.Cluster
		err error
	)
	pprof.Do(ctx, pprof.Labels(stageLabel, stageBroker), func(context.Context) {
		c, err = kfake.NewCluster(kfake.NumBrokers(1),
			kfake.ListenFn(func(network, _ string) (net.Listener, error) { return net.Listen(network, "127.0.0.1:0") }))
	})
	if err != nil {
		return nil, fmt.Errorf("start kfake broker: %w", err)
	}
	return &broker{cluster: c, addrs: c.ListenAddrs()}, nil
}

func (b *broker) close() { b.cluster.Close() }

// topic is a capture topic the broker holds.
type topic struct {
	name       string
	partitions int32
	records    int
	sizes      Sizes
	bytes      int64 // record values produced
}

// produce creates the topic with partitions partitions and fills it with
// records generated captures of the given sizes, spread round-robin over
// the partitions, compressed the way franz-go producers do by default
// (snappy). It generates on every core.
func (b *broker) produce(ctx context.Context, name string, partitions int32, records int, sizes Sizes) (*topic, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(b.addrs...), kgo.DefaultProduceTopic(name),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(20_000))
	if err != nil {
		return nil, fmt.Errorf("produce to %s: %w", name, err)
	}
	defer cl.Close()
	if err := createTopic(ctx, cl, name, partitions); err != nil {
		return nil, err
	}
	t := &topic{name: name, partitions: partitions, records: records, sizes: sizes}
	const chunk = 5_000
	sizesOf := make([]int64, (records+chunk-1)/chunk)
	p := pool.New().WithErrors().WithContext(ctx).WithMaxGoroutines(runtime.GOMAXPROCS(0))
	for c := range sizesOf {
		p.Go(func(ctx context.Context) error {
			lo, hi := c*chunk, min(records, (c+1)*chunk)
			batch := make([]*kgo.Record, 0, hi-lo)
			for i := lo; i < hi; i++ {
				v := captureValue(i, sizes)
				sizesOf[c] += int64(len(v))
				batch = append(batch, &kgo.Record{Partition: int32(i % int(partitions)), Value: v})
			}
			if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
				return fmt.Errorf("produce records %d to %d to %s: %w", lo, hi, name, err)
			}
			return nil
		})
	}
	if err := p.Wait(); err != nil {
		return nil, err
	}
	for _, n := range sizesOf {
		t.bytes += n
	}
	return t, nil
}

func createTopic(ctx context.Context, cl *kgo.Client, name string, partitions int32) error {
	resp, err := kadm.NewClient(cl).CreateTopic(ctx, partitions, 1, nil, name)
	if err == nil {
		err = resp.Err
	}
	if err != nil {
		return fmt.Errorf("create topic %s: %w", name, err)
	}
	return nil
}
