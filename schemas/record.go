package schemas

import (
	"fmt"
	"time"
)

// Coordinates say where a record sits in its source: a Kafka topic,
// partition and offset, or a file name, 0 and the line number.
type Coordinates struct {
	Topic     string
	Partition int32
	Offset    int64
}

func (c Coordinates) String() string {
	return fmt.Sprintf("%s/%d@%d", c.Topic, c.Partition, c.Offset)
}

// TopicPartition names one partition of one topic.
type TopicPartition struct {
	Topic     string
	Partition int32
}

// TP returns the partition the coordinates belong to.
func (c Coordinates) TP() TopicPartition { return TopicPartition{c.Topic, c.Partition} }

// Offsets maps a partition to the next offset to read from it: every record
// below that offset is accounted for.
type Offsets map[TopicPartition]int64

// Record is one raw record as a source delivers it, before decoding.
type Record struct {
	Coordinates
	Key       []byte
	Value     []byte
	Timestamp time.Time // broker or file timestamp; zero when unknown
}
