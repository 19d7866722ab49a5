# stand-in for cv2.imread / cvtColor (generate_gt only reads the image height)
import numpy as np
from PIL import Image

COLOR_BGR2RGB = 4
def imread(path):
    return np.asarray(Image.open(path).convert('RGB'))[..., ::-1]
def cvtColor(img, code):
    return img[..., ::-1]
