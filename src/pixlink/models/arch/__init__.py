"""Model architectures written in pixlink so that packaged weights load without their
packages' code (which pulls torchvision or timm). Each module imports torch: import them only
inside backend factories."""
