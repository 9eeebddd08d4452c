# Toy person re-ID (Market-1501 layout and naming), made by
# `python tools/misc/make_toy_data.py`: 30 train ids, 30 test ids, 6
# cameras, junk (-1) and distractor (0000) gallery images, and a part-parsing
# map per image under parsing/<subset>/ (0 background, 1 head, 2 upper body,
# 3 lower body, 4 shoes). The re-ID dataset class arrives with P2Net.
data_root = '{{ fileDirname }}/../../../data/toy_reid/'
train_prefix = 'bounding_box_train'
query_prefix = 'query'
gallery_prefix = 'bounding_box_test'
parsing_prefix = 'parsing'
num_parts = 5
