"""Multi-person pose (CenterNet ``multi_pose``): a person is a centre point; its joints are offsets from that
centre, refined by joint heatmaps."""
