// Prints the partition the Java client's default partitioner picks for each
// key (BuiltInPartitioner.partitionForKey), so tests compare our murmur2
// partitioning against Kafka's own code rather than against copied numbers.
import java.nio.charset.StandardCharsets;
import org.apache.kafka.common.utils.Utils;

public class PartitionForKey {
    public static void main(String[] args) {
        int partitions = Integer.parseInt(args[0]);
        for (int i = 1; i < args.length; i++) {
            byte[] key = args[i].getBytes(StandardCharsets.UTF_8);
            System.out.println(Utils.toPositive(Utils.murmur2(key)) % partitions);
        }
    }
}
